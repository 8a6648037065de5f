"""``python -m dicom_node.receive [CONFIG.toml]``: run the SCP alone (settings from the file and
``PULMONODE_*`` environment variables). ``pulmonode scp`` does the same from the CLI."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from dicom_node.config import Settings
from dicom_node.receive.scp import serve_forever


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    settings = Settings.load(Path(argv[0]) if argv else None)
    serve_forever(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
