"""vimo: a contact sheet of the moments where something moved in a clip or a burst of frames.

The modules follow the data, one stage each, and only ever import stages before their own:

    config, errors            what every stage shares
    upload                    gateway event  -> Upload (media + Options)
    frames                    Upload media   -> time-stamped samples
    motion                    samples        -> motion scores
    events                    scores         -> Events
    montage                   Events         -> JPEG contact sheet
    analysis                  runs the stages above for one piece of media
    delivery                  result         -> HTTP response body or S3 object
    app                       the Lambda handler (Powertools routing)
    gateway, cli              the local API Gateway and the `vimo` command
"""

__version__ = "0.1.0"
