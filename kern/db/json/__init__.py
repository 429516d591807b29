"""`kern.db.json.JsonDb`: the reference API's JSON-file store, which kern does not have (see `JsonDb`)."""

from kern.db.json.json_db import JsonDb

__all__ = ["JsonDb"]
