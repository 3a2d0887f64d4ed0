"""`client-sut submission`: an MLPerf Inference submission folder for Llama-3.1-8B, checked.

The data path, one module per step: `runs` makes the LoadGen runs as child `client-sut run`
processes (or they are read from a folder); `system` and `probe` describe the system (what the
user writes, what the tool sees); `layout` and `formats` say where each file goes and what it
holds; `assemble` copies the runs into the v6.x layout; `checker` runs MLCommons' own checker;
`checks` are the checks it does not make, over `folder`'s reading of the assembled tree;
`command` ties them together.
"""
