"""Pure pieces of the unpaired training methods (CycleGAN, CUT, neural style)."""
