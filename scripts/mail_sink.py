"""A local SMTP server for `scripts/run`: accepts every message and prints it (headers
and text part, so the approve and cancel links are right there in the log). Started
only for the demo (the embedded default, or `scripts/run --demo`, never under
APP_ENV=production) when no mail server is configured (neither SMTP_HOST nor
FROM_EMAIL): anywhere else a printed link is a live approval in a terminal's scrollback.

    python scripts/mail_sink.py PORT
"""

from __future__ import annotations

import sys
import time
from email import message_from_bytes
from email.policy import default

from aiosmtpd.controller import Controller


class PrintingHandler:
    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=default)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else "(no text part)"
        print(
            f"--- mail to {', '.join(envelope.rcpt_tos)}: {message['Subject']}\n{text}---",
            flush=True,
        )
        return "250 Message accepted"


def main() -> None:
    port = int(sys.argv[1])
    controller = Controller(PrintingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"mail sink on 127.0.0.1:{port}: every email is printed here", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
