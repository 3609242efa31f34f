"""The MakeWarp task: calibrated calexps to per-visit warps on skymap patches."""
