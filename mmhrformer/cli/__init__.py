"""Command-line entry points: the checkpoint converter, the hosts' train / test tools for this
package's configs, and the image demo."""
