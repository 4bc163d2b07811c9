"""What admins run by hand: the whole-stack plan and the `kubectl lks` plugin.

Above reconcile/ in the layers: a plan is the reconcile's own observe -> plan pass with apply
off, so this package drives the reconcile code rather than repeating it.
"""
