"""IR passes: encode weights with codebooks, choose what stays raw for fidelity."""
