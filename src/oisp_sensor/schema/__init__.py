"""The one place where OISP event types and their envelope are defined."""
