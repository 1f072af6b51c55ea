"""The web console at /console: server-rendered pages for operators, built on the admin API.

Every read and every change goes through the admin API in-process (``client.AdminClient``),
so the console can do nothing the API cannot, and both behave the same.
"""
