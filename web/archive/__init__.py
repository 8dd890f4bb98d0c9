"""The archive: every room event the broker sequenced, kept in the nodes' database.

Written by the ``archiver`` program alone (``manage.py runarchiver``), read by the
nodes and the Django admin.
"""
