"""The editors' preview studio: `newsletter preview`, local only (see `app`)."""

from newsletter.studio.app import LOCAL_HOSTS, create_studio

__all__ = ["LOCAL_HOSTS", "create_studio"]
