"""Train a segmentation model: ``python train.py [hydra overrides]`` (see README.md)."""

from seglab.train import main

if __name__ == "__main__":
    main()
