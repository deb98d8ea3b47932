"""The Compute Engine API as data: request building, paging, responses and errors, retries, redaction, list
warnings and the request-body schema. No I/O: the hooks send what is built here."""
