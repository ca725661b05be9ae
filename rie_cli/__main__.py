"""`python -m rie_cli ...` (also what `torchrun -m rie_cli train ...` runs)."""

from rie_cli.cli import main

if __name__ == "__main__":
    main()
