"""PFDN in one folder: the network (``pfdn_arch.py``: PFDN and its block PFDB), its building blocks (``rrrb.py``: the
reparameterizable RRRB that fuses itself; ``esa.py``: the attention), its facts (``spec.py``: keys, hyperparameters
read off a state dict, forms; ``limits.py``: the smallest input, importable without torch), the conversion of a
training-form checkpoint to the deployed form (``convert.py``) and the graph the runtimes export (``graph.py``).
Nothing outside this folder names PFDN's weights or builds one from its parts."""
