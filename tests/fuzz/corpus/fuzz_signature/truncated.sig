edgert-signature-v1
key-id: 9bb45d102b9839c1
signature: 5f5f