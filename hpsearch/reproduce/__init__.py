"""The report's table, reproduced on a sealed test split."""
from hpsearch.reproduce.run import *  # noqa: F401,F403
from hpsearch.reproduce.run import render_markdown, reproduce  # noqa: F401
