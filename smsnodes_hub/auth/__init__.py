"""Who may connect and what they may touch: accounts, tokens, key derivation, the keyring
and the login throttle."""
