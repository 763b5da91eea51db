"""Exchange venues behind one protocol (ccxt, paper, replay, simulated). No Qt."""
