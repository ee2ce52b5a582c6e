// The chat widget: see README (written in the next commit).
