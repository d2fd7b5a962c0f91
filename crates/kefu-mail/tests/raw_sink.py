# aiosmtpd (Debian's python3-aiosmtpd) keeping each message's bytes exactly
# as they arrived (envelope.original_content) in DIR/000000.eml, 000001.eml …
# The Maildir handler re-serialises messages through Python's email package,
# which rewrites bodies: fine for reading headers, wrong for checking a DKIM
# signature. Usage: raw_sink.py DIR PORT
import os
import sys
import threading

from aiosmtpd.controller import Controller

out, port = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)


class Raw:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(out, "%06d.eml" % Raw.count)
        Raw.count += 1
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


controller = Controller(Raw(), hostname="127.0.0.1", port=port)
controller.start()
threading.Event().wait()
