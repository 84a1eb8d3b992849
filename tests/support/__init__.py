"""Test support for oisp-sensor's end-to-end tests.

Real AI clients (curl, the openai/anthropic SDKs, Node's fetch) must talk TLS through OpenSSL to
the *real* provider hostnames so the sensor's uprobes see genuine traffic, yet the machine has no
internet. This package provides the pieces that make that possible offline:

* :mod:`tests.support.tls` -- a throwaway CA and a server certificate for the provider hostnames;
* :mod:`tests.support.netns` -- a private network namespace whose ``/etc/hosts`` points those
  hostnames at 127.0.0.1, so nothing can ever leave the machine;
* :mod:`tests.support.fake_provider` -- a fast HTTPS server speaking the providers' wire formats;
* :mod:`tests.support.fixtures` -- pytest fixtures gluing the three together.
"""
