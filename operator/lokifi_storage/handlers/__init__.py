"""The only modules with @kopf decorators; thin, they call reconcile."""
