MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

LAMBDA_DICT = {
    'valid': 1.0, 'hole': 6.0, 'tv': 0.1, 'prc': 0.05, 'style': 120.0}
