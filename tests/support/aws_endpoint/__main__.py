"""`python -m tests.support.aws_endpoint --port N [--state FILE]`: serve the local EC2
endpoint until killed (see the package)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.support.aws_endpoint import Ec2Endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description="A local EC2 endpoint for tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state", type=Path, default=None)
    arguments = parser.parse_args()
    endpoint = Ec2Endpoint(port=arguments.port, state_file=arguments.state)
    print(endpoint.url, flush=True)
    try:
        endpoint.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.server.server_close()


if __name__ == "__main__":
    main()
