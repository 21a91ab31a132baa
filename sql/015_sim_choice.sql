-- The SIM slot a message is to be sent from (ACCOUNTS.md "Sending": `"sim": 1` or `2` in
-- send-sms), carried in the `sms` frame as `"sim": N`; NULL: the phone's default.
ALTER TABLE messages ADD COLUMN sim smallint CHECK (sim IN (1, 2));
