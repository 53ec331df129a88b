"""Scope package for mmengine: ``type='addersr.<Arch>'`` makes mmengine import ``addersr.registry``.

The plugin itself is ``addersr_plugin``; this package only exists under the registry scope
name so mmengine finds the plugin's registry without it being imported first, and for the
console commands' entry points (``addersr.cli``), which must not import the plugin before they
have parsed their arguments.
"""
