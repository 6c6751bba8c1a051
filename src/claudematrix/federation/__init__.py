"""Machines paired over Matrix federation: each keeps its embedded homeserver.

A machine that will meet others has a federation listener (TLS, a certificate it made) and a
server name other machines can reach. The person pairs two machines by exchanging cards;
each side pins the other's certificate and lets only paired machines federate.

- address.py: the federation listener's ADDRESS:PORT, typed and checked.
- tls.py: this machine's certificate (made once) and a peer's, fetched and fingerprinted.
- card.py: the one line a machine prints for another to add.
- peers.py: the paired machines, kept in the state dir.
- blocklist.py: Synapse's private-range blocklist with exactly the paired addresses carved out.

Nothing is re-exported here: config.py imports address.py on every start, and the rest
stays unloaded until pairing needs it.
"""
