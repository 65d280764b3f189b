"""Training image classifiers from generative models: BigGAN + Algorithm 1 (Pham et al. 2019) and EC-GAN."""
