"""Flax linen modules only: generators, the discriminator and VGG19."""
