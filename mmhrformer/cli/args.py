"""The argument parser of every command: its errors on one line, exit status 2."""
import argparse


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are the one line ``PROG: error: MESSAGE`` (exit
    status 2) without the usage block, as every other bad input of the commands reads; ``-h``
    still prints the usage."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message}\n')
