"""vimo: a contact sheet of the moments where something moved in a clip or a burst of frames.

The modules follow the data, one stage each, and import only what comes before them:

    config, errors            what every stage shares
    storage, sources          S3 objects and presigned URLs; where a clip sent by reference comes from
    upload                    gateway event  -> Upload (media + Options)
    frames                    Upload media   -> time-stamped samples (with their pictures)
    motion                    samples        -> motion scores
    events                    scores         -> Events (each with its tile)
    montage                   Events         -> JPEG contact sheet
    analysis                  runs the stages above for one clip, or part of one, or a burst
    segments                  long clips in parallel: a process pool, or Lambda invoking itself
    delivery                  result         -> HTTP response body or S3 object
    app                       the Lambda handler (Powertools routing)
    gateway, cli              the local API Gateway and the `vimo` command
    batch, watch              the command line's many clips at once, and its live streams
"""

__version__ = "0.1.0"
