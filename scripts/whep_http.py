"""The HTTP half of WHIP and WHEP (RFC 9725) for the Python test clients: POST an SDP offer,
get the status, the session's Location and the answer."""

import urllib.request


def post_offer(url, offer, timeout=10):
    req = urllib.request.Request(
        url, data=offer.encode(), method="POST", headers={"Content-Type": "application/sdp"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.headers.get("Location"), resp.read().decode()
