"""Modality codecs and data sources: text (tokenizers, corpora), images (patches, datasets), mixed."""
