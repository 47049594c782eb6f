"""The seed's live demo: "captured facial expressions mapping directly to a visualized point in the latent space".

`python -m facevae.live ckpt_path=PATH source=0|clip.mp4 [output=demo.mp4]`. Every frame of a webcam or a video
goes through the face tracking and cropping that made the training crops, then the encoder; one view shows the
frame, the crop and its reconstruction, the point on a plane through the training crops' mu, and mu as bars.

    settings.py     the live group's settings, each checked once before any work
    sources.py      a camera or a video file, as frames in time order
    latent_map.py   the plane through the training crops' mu, fitted once per checkpoint and cached beside it
    face.py         one frame through the tracker, the crop and the model
    view.py         drawing the view
    window.py       showing it, in a process that never imports PyAV
    writer.py       or writing it to an H.264 video
    loop.py         the loop that ties them together, and its summary
    cli.py          the command line (Hydra's conf/live.yaml); __main__.py runs it

This file imports nothing: the window process imports `facevae.live.window` alone, and must not load PyAV.
"""
