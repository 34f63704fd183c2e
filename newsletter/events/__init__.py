"""Events from the providers' webhooks: `<provider>.py` verifies, reads and bounds one provider's
events on the shared `base` and `fields`; `registry` lists the providers; `intake` stores events once
and acts on them. What a request may contain, and what becomes of a bad event: `base`."""
