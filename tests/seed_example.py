# The send_sms part of the Python example in seeds/smsnodes-api.txt, verbatim except for
# API_BASE, which comes from the command line (or SMSNODES_API_BASE) so it can reach a test hub.
# Lines are kept as the seed has them; only its trailing whitespace is gone.
import os
import sys

import requests

API_BASE = sys.argv[1] if len(sys.argv) > 1 else os.environ["SMSNODES_API_BASE"]

def send_sms():
    url = f'{API_BASE}/api/send-sms'
    data = {
        'deviceUsername': 'your_device',
        'password': 'your_password',
        'phoneNumbers': ['+1234567890'],
        'message': 'Hello from SMS Nodes!',
        'priority': 1
    }

    try:
        response = requests.post(url, json=data)  # noqa: S113  (the seed sets no timeout)
        response.raise_for_status()
        print('SMS sent:', response.json())
    except requests.exceptions.RequestException as e:
        print('Error:', e)

send_sms()
