print("pinreplay")
