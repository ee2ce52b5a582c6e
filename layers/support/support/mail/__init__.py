"""Mail: inbound messages parsed (`inbound`), their text and the customer's new text (`text`), SES's receipt
event (`ses`). docs/email.md says what the parser keeps."""
