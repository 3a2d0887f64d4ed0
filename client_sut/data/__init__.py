"""The QSL's data: datasets in their forms, the official prompt, tokenization and the
tokenized-prompt cache.
"""
