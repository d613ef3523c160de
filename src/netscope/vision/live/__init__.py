"""Live mode: Grad-CAM heatmaps and layer activations on camera or video frames.

Data flows one way: a source thread puts frames into a one-frame slot (stale frames are
dropped, never queued), the processor takes the newest frame and renders it, sinks record or
show the result.
"""
