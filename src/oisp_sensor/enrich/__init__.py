"""Context for events: host, actor (user) and process, from cached /proc lookups."""
