"""The built-in IB Gateway simulator: a TCP server speaking the TWS protocol."""
