"""Events from the providers: verifying webhook signatures, normalising payloads, acting on them."""
