# Transcription of the reference's detokenizers (dataloader.py) in Python, used only to
# produce golden.jsonl: python3 make_golden.py > golden.jsonl
import re, json, sys, random
def wt(string):
  string = string.replace("s '", "s'")
  string = re.sub(r"/' [0-9]/", r"/'[0-9]/", string)
  string = string.replace(" @-@ ", "-")
  string = string.replace(" @,@ ", ",")
  string = string.replace(" @.@ ", ".")
  string = string.replace(" : ", ": ")
  string = string.replace(" ; ", "; ")
  string = string.replace(" . ", ". ")
  string = string.replace(" ! ", "! ")
  string = string.replace(" ? ", "? ")
  string = string.replace(" , ", ", ")
  string = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", string)
  string = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", string)
  string = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", string)
  string = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', string)
  string = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", string)
  string = string.replace("= = = =", "====")
  string = string.replace("= = =", "===")
  string = string.replace("= =", "==")
  string = string.replace(" " + chr(176) + " ", chr(176))
  string = string.replace(" \n", "\n")
  string = string.replace("\n ", "\n")
  string = string.replace(" N ", " 1 ")
  string = string.replace(" 's", "'s")
  return string
def ptb(x):
  x = x.replace(" 's", "'s")
  x = x.replace("s ' ", "s' ")
  x = x.replace(" n't", "n't")
  x = x.replace(" \n ", "\n")
  x = x.replace("\\/", "/")
  for _ in range(10):
      x = x.replace(" N ", " 1 ")
  x = x.replace("$ 1", "$1")
  x = x.replace("# 1", "#1")
  x = x.replace("<unk>", "?")
  return x
def lm1b(x):
  x = x.replace('http : / / ', 'http://')
  x = x.replace('https : / / ', 'https://')
  x = re.sub(r' \'(\w+)', r"'\1", x)
  x = re.sub(r' (\w+) \. ', r' \1. ', x)
  x = re.sub(r' (\w+) \.$', r' \1.', x)
  x = x.replace(' ? ', '? ')
  x = re.sub(r' \?$', '?', x)
  x = x.replace(' ! ', '! ')
  x = re.sub(r' \!$', '!', x)
  x = x.replace(' , ', ', ')
  x = x.replace(' : ', ': ')
  x = x.replace(' ; ', '; ')
  x = x.replace(' / ', '/')
  x = re.sub(r'\" ([^\"]+) \"', r'"\1"', x)
  x = re.sub(r'\' ([^\']+) \'', r"'\1'", x)
  x = re.sub(r'\( ([^\(\)]+) \)', r"(\1)", x)
  x = re.sub(r'\[ ([^\[\]]+) \]', r"[\1]", x)
  x = x.replace('$ ', '$')
  x = x.replace('£ ', '£')
  return x
def lambada(text):
  text = text.replace("“", '"')
  text = text.replace("”", '"')
  return '\n'+text.strip()
fns={'wt':wt,'ptb':ptb,'lm1b':lm1b,'lambada':lambada}
frags = ["s '", "/' 5/", " @-@ ", " @,@ ", " @.@ ", " : ", " ; ", " . ", " ! ", " ? ", " , ", "( ", " )", "[ ", " ]",
         "{ ", " }", '" ', ' "', "' ", " '", "= = = =", "= =", " = ", " \u00b0 ", " \n", "\n ", " \n ", " N ", " 's",
         " n't", "\\/", "$ 1", "# 1", "<unk>", "http : / / ", "https : / / ", " 'tis", " word . ", " end .", " ?", " !",
         " / ", "$ ", "\u00a3 ", "\u201c", "\u201d", "\u3000", "\u00a0", "x", "Hello", " world", "42", "été", "\n", "  ", "'", '"']
frags = [json.loads('"' + f.replace('"', '\\"') + '"') if "\\u" in f or "\\n" in f else f for f in frags]
rng = random.Random(1)
for i in range(1500):
  s = "".join(rng.choice(frags) for _ in range(rng.randint(1, 12)))
  for name, fn in fns.items():
    print(json.dumps({"fn": name, "in": s, "out": fn(s)}, ensure_ascii=False))
