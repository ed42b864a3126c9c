"""Media through the network: the read -> run -> write pipeline images and films share (``pipeline``), what a path
names and the work it makes (``inputs``), folders of image files (``images``) and films (``video``)."""
