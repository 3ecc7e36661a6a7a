"""Train a segmentation model: ``python train.py [hydra overrides]`` (see README.md)."""

from seglab.cli import train as main

if __name__ == "__main__":
    main()
