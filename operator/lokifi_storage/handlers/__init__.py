"""The only module with @kopf decorators; thin, they hand each resource to the runtime's
controller (through Kopf's memo), so the decorators hold no decisions of their own."""
