// Search text folded so that what a reader takes for the same word matches (issue 26):
// full-width and half-width forms (NFKC), upper and lower case, and variant characters,
// so "台北" finds 臺北車站 and "温州街" finds 溫州街. Shared by the viewer's list and map
// and the console's camera picker.

// Each variant maps to one form. Traditional variants first (臺/台 is in every
// inventory), then the simplified forms of characters common in place names, which
// visitors and some devices type.
const VARIANTS = {
  臺: "台", 峯: "峰", 温: "溫", 衞: "衛", 綫: "線", 舘: "館", 羣: "群", 鷄: "雞",
  着: "著", 麪: "麵", 爲: "為", 眞: "真", 嶋: "島", 濶: "闊", 汚: "污", 裏: "裡",
  湾: "灣", 区: "區", 车: "車", 门: "門", 馆: "館", 桥: "橋", 园: "園", 东: "東",
  兴: "興", 宁: "寧", 义: "義", 华: "華", 庄: "莊", 龙: "龍", 凤: "鳳", 乡: "鄉",
  镇: "鎮", 县: "縣", 长: "長", 阳: "陽", 罗: "羅", 医: "醫", 厅: "廳",
  场: "場", 运: "運", 馀: "餘", 边: "邊", 头: "頭", 兰: "蘭", 关: "關", 丽: "麗",
};

export function fold(text) {
  let out = "";
  for (const ch of String(text ?? "").normalize("NFKC").toLowerCase()) out += VARIANTS[ch] ?? ch;
  return out;
}

// A test for folded text: every word of the query (split on spaces) must appear.
export function matcher(query) {
  const words = fold(query).split(/\s+/).filter(Boolean);
  return (text) => {
    const folded = fold(text);
    return words.every((word) => folded.includes(word));
  };
}
