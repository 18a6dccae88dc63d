"""The argument parser of every command: its errors on one line, exit status 2."""
import argparse

from mmengine.config import DictAction


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are the one line ``PROG: error: MESSAGE`` (exit
    status 2) without the usage block, as every other bad input of the commands reads; ``-h``
    still prints the usage."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message}\n')


class CfgOptions(DictAction):
    """MMEngine's ``DictAction`` (``KEY=VALUE``, values parsed as Python literals and lists), as
    OpenMMLab's tools take ``--cfg-options``, with an item lacking ``KEY=`` a one-line error
    instead of a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            if not item.partition('=')[0] or '=' not in item:
                parser.error(f'{option_string}: {item!r} is not KEY=VALUE')
        super().__call__(parser, namespace, values, option_string)
