"""First-party click tracking: tracked links in issues, the hits they get, and how hits are judged.

links.py      the tracked link's token and the links an issue carries (pure)
agents.py     user-agent classes from the maintained list in agents.toml (pure)
classify.py   the rules that call a hit human or machine (pure)
recorder.py   the redirect's side: resolving a token, queueing hits, writing them in batches
retention.py  folding old hits into counts, and the store's side of a reader's data
"""
