"""videomp3's command-line client: `videomp3 login`, `convert`, `jobs`, `get`, `rm` against any videomp3 server."""

__version__ = "0.1.0"
