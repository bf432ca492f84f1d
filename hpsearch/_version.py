"""The package version, apart from the package root: modules that record it (the manifest, the study's
attributes, an export) import it from here, since importing ``hpsearch`` itself would close an import circle
through the root's re-exports."""

__version__ = "0.1.0"
