"""The papers' published numbers, in one place: Pham et al. 2019 (Table I, Fig. 1-2) and Haque 2021 (Table 1)."""

# Pham et al. 2019, Table I, "Size (MB)" of one generator.
PAPER_GENERATOR_MB = {"cifar10-paper": 16.6, "cifar100-paper": 17.7, "cifar100-concat-paper": 18.8}

# Pham et al. 2019, Table I: test error (%) of the ResNet-18 trained on real subsets of n images,
# for the same number of optimisation steps (156,250) and for the same number of epochs (200).
PAPER_REAL_ERROR = {
    "cifar10": {
        "steps": {50_000: 4.83, 40_000: 5.47, 30_000: 6.12, 20_000: 7.69, 10_000: 11.09},
        "epochs": {50_000: 4.83, 40_000: 5.42, 30_000: 6.77, 20_000: 8.94, 10_000: 13.76},
    },
    "cifar100": {
        "steps": {50_000: 25.39, 40_000: 26.42, 30_000: 29.72, 20_000: 35.4, 10_000: 44.99},
        "epochs": {50_000: 25.39, 40_000: 26.72, 30_000: 30.36, 20_000: 36.65, 10_000: 48.64},
    },
}

# Table I: error (%) of the classifier trained on filtered samples of 1 GAN (mean ± std).
PAPER_GAN_ERROR = {"cifar10": (11.75, 0.23), "cifar100": (40.25, 0.32), "cifar100-concat": (37.78, 0.28)}

# --- Table I: sets of 1, 2, 4, 6 GANs, add vs concat (Pham et al. 2019, IV-D/E) -------------------
# (dataset, block, number of GANs) -> size (MB), IS mean, IS std, FID mean, FID std, error mean, error std
PAPER_TABLE_I = {
    ("cifar10", "add", 1): (16.6, 8.62, 0.13, 6.84, 0.69, 11.75, 0.23),
    ("cifar10", "add", 2): (33.2, 8.62, 0.16, 6.53, 0.12, 10.32, 0.50),
    ("cifar10", "add", 4): (66.4, 8.56, 0.16, 6.47, 0.14, 9.32, 0.02),
    ("cifar10", "add", 6): (99.6, 8.58, 0.17, 6.60, 0.1, 8.86, 0.12),
    ("cifar100", "add", 1): (17.7, 9.43, 0.17, 9.19, 0.48, 40.25, 0.32),
    ("cifar100", "add", 2): (35.4, 9.4, 0.22, 8.85, 0.3, 38.14, 2.00),
    ("cifar100", "add", 4): (70.8, 9.33, 0.22, 8.42, 0.11, 34.86, 0.05),
    ("cifar100", "add", 6): (106.2, 9.39, 0.25, 8.45, 0.09, 35.13, 0.24),
    ("cifar100", "concat", 1): (18.8, 9.31, 0.13, 8.68, 0.50, 37.78, 0.28),
    ("cifar100", "concat", 2): (37.6, 9.29, 0.13, 8.43, 0.1, 35.67, 1.01),
    ("cifar100", "concat", 4): (75.2, 9.31, 0.17, 8.49, 0.12, 32.78, 0.54),
    ("cifar100", "concat", 6): (112.8, 9.3, 0.12, 8.10, 0.12, 32.44, 0.34),
}

# Table I's IS of the real training set (its 50k rows).
PAPER_REAL_IS = {"cifar10": 10.2, "cifar100": 12.1}

# Haque 2021 (arXiv 2012.15864), Table 1: SVHN test accuracy (%) by labelled fraction of the train split.
# Three pairs of columns, each a plain classifier of an architecture vs. the GAN method built on it.
PAPER_TABLE1 = {
    0.10: {"EC-GAN: Classifier": 88.63, "EC-GAN": 91.15, "Shared DC-Disc: Classifier": 83.54,
           "Shared DC-Disc GAN": 86.17, "Shared ResNet-Disc: Classifier": 88.63, "Shared ResNet-Disc GAN": 89.32},
    0.15: {"EC-GAN: Classifier": 90.88, "EC-GAN": 92.21, "Shared DC-Disc: Classifier": 85.20,
           "Shared DC-Disc GAN": 88.72, "Shared ResNet-Disc: Classifier": 90.88, "Shared ResNet-Disc GAN": 91.37},
    0.20: {"EC-GAN: Classifier": 92.61, "EC-GAN": 93.40, "Shared DC-Disc: Classifier": 86.77,
           "Shared DC-Disc GAN": 89.39, "Shared ResNet-Disc: Classifier": 92.61, "Shared ResNet-Disc GAN": 93.24},
    0.25: {"EC-GAN: Classifier": 92.89, "EC-GAN": 93.93, "Shared DC-Disc: Classifier": 87.58,
           "Shared DC-Disc GAN": 87.93, "Shared ResNet-Disc: Classifier": 92.89, "Shared ResNet-Disc GAN": 93.96},
    0.30: {"EC-GAN: Classifier": 93.12, "EC-GAN": 94.32, "Shared DC-Disc: Classifier": 87.78,
           "Shared DC-Disc GAN": 90.62, "Shared ResNet-Disc: Classifier": 93.12, "Shared ResNet-Disc GAN": 93.42},
}
