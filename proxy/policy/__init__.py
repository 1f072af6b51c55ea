"""Policies: ``rules`` validates a document and judges one request in memory, ``scope`` holds
the record and recipient checks it uses, ``store`` keeps immutable versions in Postgres."""
